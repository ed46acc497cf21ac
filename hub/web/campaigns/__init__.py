"""`/ui/campaigns`: the marketers' campaign pages (issue 13 item 8)."""
