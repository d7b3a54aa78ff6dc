"""Who sent what to whom: the SES event, the client SES saw, recipient domains."""
