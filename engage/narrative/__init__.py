"""The narrative layer: story graphs, scene plans and the controller that picks the next scene.

>>> from engage.narrative import Controller, load_story, default_story_path
>>> story = load_story(default_story_path())
>>> story.title, len(story.endings())
('Night Train', 3)
"""

from .controller import EVENT_PREFIXES, Choice, Controller, Policy, RulePolicy, ViewerState
from .plan import ScenePlan, ScenePlanWriter, directives_for, read_scene_plans
from .story import (
    MAX_STORY_BYTES,
    Scene,
    Story,
    StoryError,
    default_story_path,
    fatal_problems,
    load_story,
    load_story_text,
    validate,
)

__all__ = [
    "Choice", "Controller", "EVENT_PREFIXES", "MAX_STORY_BYTES", "Policy", "RulePolicy", "Scene", "ScenePlan",
    "ScenePlanWriter", "Story", "StoryError", "ViewerState", "default_story_path", "directives_for",
    "fatal_problems", "load_story", "load_story_text", "read_scene_plans", "validate",
]
