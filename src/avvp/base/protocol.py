"""The fixed vocabulary of the LLP protocol (PROTOCOL §1, §5), defined once for every module.

A video is SEGMENTS one-second segments; scores come in two LEVELS, each with the three STREAMS
(audio, visual and audio-visual = both) and their two summaries, the SCORES of one level.
"""
from __future__ import annotations

SEGMENTS = 10
MODALITIES = ("audio", "visual")
STREAMS = ("audio", "visual", "audio_visual")
SCORES = (*STREAMS, "type_at_av", "event_at_av")
LEVELS = ("segment_level", "event_level")
