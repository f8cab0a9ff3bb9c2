"""Video generators behind one interface (submit / poll / cancel / fetch result)."""
