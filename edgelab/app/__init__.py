"""The workstation's application layer on top of the shared kernel (`edgelab/`): the operator
CLI, the demo, result tables and launch files. Python 3.10+ and extra `coordinator`; nothing on
a device imports it (tests/agent/test_python38.py checks the agent's import closure)."""
