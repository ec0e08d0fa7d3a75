"""One module per role's screens; each page reads through the API's endpoint functions."""
