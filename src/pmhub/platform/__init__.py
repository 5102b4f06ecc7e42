"""Platform state (users, projects, applications, jobs, audit) behind service functions.

See README.md in this folder: what is stored where, and how the audit trail is verified.
"""
