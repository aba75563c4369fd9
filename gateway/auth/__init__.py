"""Users, roles and their scopes: who may see and do what (the API enforces it)."""
