"""Audio (16 kHz WAV) and frames (8 fps JPEG) of one shard's clips, and the extractors' input lists."""


rule media:
    """Decode every downloaded clip of a shard; a clip that fails becomes `unavailable`."""
    input:
        records="results/shards/{shard}/download.tsv",
        videos="results/videos/{shard}",
    output:
        records="results/shards/{shard}/media.tsv",
        audio=directory("results/audio/{shard}"),
        frames=directory("results/frames/{shard}"),
        audio_list="results/shards/{shard}/audio.txt",
        frames_list="results/shards/{shard}/frames.txt",
        video_list="results/shards/{shard}/video.txt",
    log:
        "results/logs/media/{shard}.log",
    benchmark:
        "results/benchmarks/media/{shard}.tsv"
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
