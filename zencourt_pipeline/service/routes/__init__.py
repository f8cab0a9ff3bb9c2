"""Routes of the HTTP service, one module per concern."""
