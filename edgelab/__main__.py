from edgelab.cli import app

app()
