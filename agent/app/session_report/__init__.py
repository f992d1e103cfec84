"""What `agentd sessions play/export/report` make of a stored session: tlog's timing
decoded to frames (frames.py), asciicast v2 (asciicast.py), the HTML report (html.py)."""
