"""The invitation e-mail (spec 10), sent for `identity.invitation.created` events."""
