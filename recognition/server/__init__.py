"""`keyface serve`: the HTTP API and the browser page over one gallery, models loaded once."""
