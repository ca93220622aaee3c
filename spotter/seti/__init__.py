"""SETI Breakthrough Listen: Kaggle data layout, preprocessing, synthetic needles, de-Doppler baseline, search.

Modules, each importing at its top only modules listed before it: `config` (the training config, checked as
it loads; no torch), `data` (read and validate the layout), `cleaning` (time binning and `clean_cadence`, the
cleaning the search and the CNN input share), `needles` (needle paths, pulses, rendering, noise estimates and
the injection helpers `add_signal`/`add_interference`, shared by the generator and training), `dedoppler`
(classical baseline), `preprocess` (cadence → model input: a pipeline of small steps), `synth` (data set
generator), `search` (search real .fil/.h5 cadences: `spotter seti search`), `report`, `task` (the CNN on the engine), `ensemble`,
`pseudo`, `pseudo_cli`, `search_cli`, `demo`, `cli` (`spotter seti ...`).

This module stays light (the CLI and the config import it): the cadence geometry and the needle kinds.
"""

CADENCE_SHAPE = (6, 273, 256)  # panels ON, OFF, ON, OFF, ON, OFF; time rows; frequency channels
ON_PANELS = (0, 2, 4)
OFF_PANELS = (1, 3, 5)
NEEDLE_KINDS = ("straight", "quadratic", "sine", "random_walk")  # needle path shapes (`spotter.seti.needles`)
