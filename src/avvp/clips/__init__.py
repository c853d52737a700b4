"""Clips in: downloads (yt-dlp), local folders and demo clips, their records, and the media every
kind reads (16 kHz WAV, 8 fps frames, the clip's own audio track)."""
