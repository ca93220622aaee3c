"""SETI Breakthrough Listen: Kaggle data layout, preprocessing, synthetic needles, de-Doppler baseline, search.

Modules: `data` (read and validate the layout), `preprocess` (cadence → model input), `synth` (needle
generator and `inject_needle` augmentation), `dedoppler` (classical baseline), `search` (search real
.fil/.h5 cadences, `spotter seti search`), `cli` (`spotter seti ...`).
"""

CADENCE_SHAPE = (6, 273, 256)  # panels ON, OFF, ON, OFF, ON, OFF; time rows; frequency channels
ON_PANELS = (0, 2, 4)
OFF_PANELS = (1, 3, 5)
