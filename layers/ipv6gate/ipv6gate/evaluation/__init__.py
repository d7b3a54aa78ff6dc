"""One message through the rule: source, recipients, checks (concurrently, until certain), decision, side effects."""
