"""CloudFormation on the embedded runtime asks a resource in progress again every 0.1 s once its quick asks are
spent (photopipe_infra.cloudformation_polling), instead of LocalStack's second: a stack's Lambda functions each
waited a whole second to be seen Active."""

from __future__ import annotations

import json
import subprocess
import textwrap

from photopipe_infra import venvs

SCRIPT = textwrap.dedent(
    """
    import json, time
    from localstack import config
    from localstack.services.cloudformation import resource_provider as rp
    from photopipe_infra.cloudformation_polling import poll_resources_in_progress_often

    config.CFN_NO_WAIT_ITERATIONS = int(config.CFN_NO_WAIT_ITERATIONS or 5)  # as the CloudFormation provider does
    poll_resources_in_progress_often()
    poll_resources_in_progress_often()  # a second start does not wrap it twice
    slept = []
    rp.time.sleep = slept.append
    answers = [rp.OperationStatus.IN_PROGRESS] * 8 + [rp.OperationStatus.FAILED]
    executor = rp.ResourceProviderExecutor(stack_name="s", stack_id="id")
    executor.execute_action = lambda provider, payload: rp.ProgressEvent(status=answers.pop(0), resource_model={})
    payload = {
        "resourceType": "AWS::Lambda::Function", "action": "Add", "callbackContext": {},
        "requestData": {"resourceProperties": {}, "logicalResourceId": "Fn"},
    }
    executor.deploy_loop(None, {}, payload)
    answers[:] = [rp.OperationStatus.IN_PROGRESS] * 8 + [rp.OperationStatus.FAILED]
    executor.deploy_loop(None, {}, payload, sleep_time=2.5)
    print(json.dumps({"slept": slept, "quick": config.CFN_NO_WAIT_ITERATIONS}))
    """
)


def test_a_resource_in_progress_is_asked_again_after_a_tenth_of_a_second_unless_the_caller_chose() -> None:
    python = venvs.ensure(venvs.LOCALSTACK).python
    result = subprocess.run([str(python), "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True)  # noqa: S603
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    waits = 8 - answer["quick"]  # eight answers in progress, the first ones asked again at once
    assert answer["slept"] == [0.1] * waits + [2.5] * waits
