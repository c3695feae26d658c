"""HTTP services: the Engine (/v1) and Sim (/api/v1) FastAPI apps."""
