"""Audio (16 kHz WAV) and frames (8 fps JPEG) of one shard's clips, and the extractors' input lists."""


rule media:
    """Decode every downloaded clip of a shard; a clip that fails becomes `unavailable`."""
    input:
        records=out("shards/{shard}/download.tsv"),
        videos=out("videos/{shard}"),
    output:
        records=out("shards/{shard}/media.tsv"),
        audio=directory(out("audio/{shard}")),
        frames=directory(out("frames/{shard}")),
        audio_list=out("shards/{shard}/audio.txt"),
        frames_list=out("shards/{shard}/frames.txt"),
        video_list=out("shards/{shard}/video.txt"),
    log:
        out("logs/media/{shard}.log"),
    benchmark:
        out("benchmarks/media/{shard}.tsv")
    conda:
        "../../envs/media.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        limits=config["media"],
    script:
        "../scripts/media.py"
