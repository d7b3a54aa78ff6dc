"""A LocalStack CloudFormation bug that stops any stack update of this template, corrected at start.

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
