"""Campaigns (issue 13): variants with weights and a holdout over an audience, each
recipient an ordinary event on the bulk lane; the runner, the report and their statistics."""
