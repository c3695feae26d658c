"""
FlowTime's web UI: pages that orchestrate Sim (templates -> models) and Engine
(models -> runs) over their HTTP APIs. Build it with ``create_ui_app(settings)``.
"""
