"""The ground floor: what every step uses (the protocol's fixed numbers, atomic files, devices, file
hashes and video suffixes, the registry base, the random-weights warning). Imports nothing else of avvp."""
