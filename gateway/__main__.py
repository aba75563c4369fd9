"""``python -m gateway`` is the ``riskwatch`` command."""

from gateway.cli import app

if __name__ == "__main__":
    app(prog_name="riskwatch")
