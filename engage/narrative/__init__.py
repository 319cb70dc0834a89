"""The narrative layer: stories (ink, TOML, YAML), the pacing director, policies, rewriters with canon
checks, scene plans and the controller that picks the next scene.

>>> from engage.narrative import Controller, load_story, default_story_path
>>> story = load_story(default_story_path())
>>> story.title, len(story.endings())
('Night Train', 3)
"""

from .controller import EVENT_PREFIXES, Choice, Controller, Policy, RulePolicy, ViewerState
from .director import Director, DirectorConfig
from .ink import InkPlayer, load_ink, sample_ink_path
from .policy import DirectorPolicy, FixedPolicy
from .rewriter import LlmRewriter, RewriteService, TemplateRewriter
from .plan import ScenePlan, ScenePlanWriter, directives_for, read_scene_plans
from .story import (
    MAX_STORY_BYTES,
    GraphPlayer,
    Scene,
    Story,
    StoryError,
    default_story_path,
    fatal_problems,
    load_story,
    load_story_text,
    open_story,
    validate,
)

__all__ = [
    "Director", "DirectorConfig", "DirectorPolicy", "FixedPolicy", "GraphPlayer", "InkPlayer", "LlmRewriter",
    "RewriteService", "TemplateRewriter", "load_ink", "open_story", "sample_ink_path",
    "Choice", "Controller", "EVENT_PREFIXES", "MAX_STORY_BYTES", "Policy", "RulePolicy", "Scene", "ScenePlan",
    "ScenePlanWriter", "Story", "StoryError", "ViewerState", "default_story_path", "directives_for",
    "fatal_problems", "load_story", "load_story_text", "read_scene_plans", "validate",
]
