"""Resources: connections/configs of an organisation, data encrypted at rest (spec 2.7)."""
