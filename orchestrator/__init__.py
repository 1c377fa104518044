"""The run: CLI, config, planning, fan-out, merge, gate and reports."""
