"""Users service: registration and lookup; announces every new user with UserRegistered."""
