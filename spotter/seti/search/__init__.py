"""`spotter seti search`: a Breakthrough Listen narrowband search over real .fil/.h5 cadences.

Modules, in the order the data meet them: `header` (read and check every header first), `reader` (stream
channel ranges through blimpy), `clean` (bandpass, gains, DC spike and noise per coarse channel), `geometry`
(times from tstart/tsamp, drift trials), `dedoppler` (exact per-file path sums with boxcars, torch),
`hits` (per-file hits), `cadence` (the ON-path search through the whole cadence), `evidence` (SNR along any
line), `events` (one event per signal, turboSETI's levels), `block` (one block of channels end to end),
`datfile` (turboSETI's .dat layout), `plots`, `summary`, `model` (the bridge to a trained run) and `runner`
(one cadence, or many on Dask). `config.SearchConfig` holds the settings.
"""
