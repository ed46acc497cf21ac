"""The marketer page for previewing message templates."""
