"""The data safe zone: applications, approvals, extraction, workspaces and output checking."""
