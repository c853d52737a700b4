"""Rule manifest: the shards' clip records gathered into one availability table."""
import sys
from collections import Counter

from avvp.records import read_records, write_records

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

records = [r for path in snakemake.input for r in read_records(path)]
repeated = [name for name, n in Counter(r.filename for r in records).items() if n > 1]
if repeated:
    raise ValueError(f"clips recorded by more than one shard: {repeated[:5]}")
write_records(sorted(records, key=lambda r: r.filename), snakemake.output[0])
print(dict(Counter(r.status for r in records)))
