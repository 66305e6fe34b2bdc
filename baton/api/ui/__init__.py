"""The approvals page (``/ui/approvals``): server-rendered HTML for approvers."""
