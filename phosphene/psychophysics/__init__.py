"""The psychophysics test of Klein, Brendel & Wichmann: do feature visualizations explain units?

- `stimuli`: units of early/middle/late layers, their natural exemplars and visualizations on disk
  (`folder_exemplars`: exemplars straight from an image folder, bad files skipped);
- `trials`: the matching trials (exemplar, visualization, catch), balanced and seeded;
- `server`: the web experiment (FastAPI; `create_app`), `storage`: its SQLite (WAL) database;
- `analysis`: accuracy per condition with Wilson intervals and the poster's plot;
- `observer`: a machine observer (another model) that solves the same trials;
- `pipeline`: the ``phosphene experiment`` verbs' pipelines (`make_stimuli`, `simulate_experiment`,
  `score_source`).

``server`` needs the ``psychophysics`` extra (fastapi, uvicorn) and is not imported here.
"""

from .analysis import CHANCE, Condition, analyze, load_responses, plot, summarize, wilson
from .folder_exemplars import exemplars_from_folder, exemplars_from_images
from .observer import MachineObserver, best_assignment, simulate
from .pipeline import TrialDesign, UnitChoice, make_stimuli, score_source, simulate_experiment
from .stimuli import (
    DEPTHS,
    StimulusSet,
    StimulusSettings,
    StimulusUnit,
    build_stimuli,
    depth_layers,
    exemplars_from_run,
    pick_units,
)
from .storage import RESPONSE_COLUMNS, ExperimentDB
from .trials import IMAGES_PER_UNIT, KINDS, Trial, design

__all__ = [
    "CHANCE", "DEPTHS", "IMAGES_PER_UNIT", "KINDS", "RESPONSE_COLUMNS", "Condition", "ExperimentDB",
    "MachineObserver", "StimulusSet", "StimulusSettings", "StimulusUnit", "Trial", "TrialDesign",
    "UnitChoice", "analyze", "best_assignment", "build_stimuli", "depth_layers", "design",
    "exemplars_from_folder", "exemplars_from_images", "exemplars_from_run", "load_responses",
    "make_stimuli", "pick_units", "plot", "score_source", "simulate", "simulate_experiment", "summarize",
    "wilson",
]
