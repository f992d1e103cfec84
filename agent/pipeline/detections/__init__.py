"""Detections: a pipeline stage that turns events into ECS alerts (built-in bastion rules and Sigma)."""
