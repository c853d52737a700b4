"""Parsing any video: its 10-second windows in each medium, the model step on a window, the
resumable stream of events and outputs, and the timeline figure."""
