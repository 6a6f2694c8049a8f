"""The recipe: one YAML file that describes a job from data to endpoint.

One pydantic model per section (sections.py; the campaign's in search.py), the whole recipe
with the checks that span sections and its hash (document.py), reading a file with its
overrides (loading.py), and errors that name the key path (keys.py, messages.py). The CLI,
jobs/, Tune's search space and docs/recipe.md all read these models, so there is no second
list of options anywhere.
"""

from fulcrum.recipe.document import Recipe
from fulcrum.recipe.keys import set_key_path
from fulcrum.recipe.loading import apply_overrides, load_recipe, validate_recipe
from fulcrum.recipe.search import SearchDimension, TuneSection
from fulcrum.recipe.sections import (
    SETTLED,
    TASK_METRICS,
    AdversarialSection,
    AssistantSection,
    AugmentSection,
    CompressSection,
    CompressVariant,
    ContinualSection,
    DataSection,
    DistillSection,
    ExportSection,
    ModelSection,
    MonitorRules,
    MonitorSection,
    OutOfScopeSection,
    PeftSection,
    Section,
    ServeSection,
    TaskSection,
    TrainSection,
)

__all__ = [
    "SETTLED",
    "TASK_METRICS",
    "AdversarialSection",
    "AssistantSection",
    "AugmentSection",
    "ContinualSection",
    "CompressSection",
    "CompressVariant",
    "DataSection",
    "DistillSection",
    "ExportSection",
    "ModelSection",
    "MonitorRules",
    "MonitorSection",
    "OutOfScopeSection",
    "PeftSection",
    "Recipe",
    "SearchDimension",
    "Section",
    "ServeSection",
    "TaskSection",
    "TrainSection",
    "TuneSection",
    "apply_overrides",
    "load_recipe",
    "set_key_path",
    "validate_recipe",
]
