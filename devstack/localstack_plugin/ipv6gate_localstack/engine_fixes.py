"""Two LocalStack CloudFormation bugs, corrected at start: one stops any stack update of this
template, the other any deploy with ActivateRuleSet=true (the second hook, below).

LocalStack's change-set engine types a list parameter (``CommaDelimitedList``, ``List<...>``) only
for the new template: on an update the *previous* value stays a string, and ``!Join [",", !Ref
Recipients]`` (the ``AllRecipients`` condition) fails with "Invalid arguments list definition for
Fn::Join". CloudFormation itself types both. The previous value is typed here the same way.
"""

from __future__ import annotations

import re
from typing import Any

from localstack.runtime.hooks import on_infra_start

_LIST = re.compile(r"^(CommaDelimitedList|List<[^>]+>)$")


@on_infra_start()
def type_previous_list_parameters() -> None:
    from localstack.services.cloudformation.engine.v2 import change_set_model_preproc as preproc

    original = preproc.ChangeSetModelPreproc.visit_node_parameter

    def visit_node_parameter(self: Any, node_parameter: Any) -> Any:
        delta = original(self, node_parameter)
        type_ = self.visit(node_parameter.type_).before
        if isinstance(delta.before, str) and isinstance(type_, str) and _LIST.match(type_):
            items = [item.strip() for item in delta.before.split(",")]
            return preproc.PreprocEntityDelta(before=items, after=delta.after)
        return delta

    preproc.ChangeSetModelPreproc.visit_node_parameter = visit_node_parameter


@on_infra_start()
def transform_before_resolving_references() -> None:
    """LocalStack resolves every resource's references in its pass for ``Fn::Transform`` (local
    transforms), on the template as written, *before* the SAM transform: a ``Ref`` to a resource SAM
    generates (``StackSetupFunctionRole``, named by ``ActivateRuleSetPolicy`` when ActivateRuleSet=true)
    then fails with "Unresolved resource dependencies". CloudFormation runs the SAM transform first.
    That pass has nothing to do for a template without ``Fn::Transform`` (this one), so it is skipped."""
    import json

    from localstack.services.cloudformation.engine.v2 import change_set_model_transform as transform

    original = transform.ChangeSetModelTransform._execute_local_transforms

    def _execute_local_transforms(self: Any) -> None:
        templates = (self._before_template, self._after_template)
        if any("Fn::Transform" in json.dumps(t, default=str) for t in templates if isinstance(t, dict)):
            original(self)

    transform.ChangeSetModelTransform._execute_local_transforms = _execute_local_transforms
