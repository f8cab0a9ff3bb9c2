"""Operations: one log format for every process (`logging.py`) and the `/health` probes that
look past the process (`health.py`)."""
