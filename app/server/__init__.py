"""How the app is served: uvicorn, its listeners and the bounds on each request."""
