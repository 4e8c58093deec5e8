"""template.yaml properties the linters do not check (facts.md): runtime, batch failure
reporting, redrive, visibility, filter policies, least privilege, alarms, handler paths,
identity (Cognito authorizer, the one public route), gateway responses in the contract's
error shape, throttling, logs with retention, encryption at rest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devstack.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"}
QUEUES = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::SQS::Queue"}
GLOBALS = TEMPLATE["Globals"]["Function"]


def sqs_events() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, event["Properties"])
        for name, props in FUNCTIONS.items()
        for event in props.get("Events", {}).values()
        if event["Type"] == "SQS"
    ]


def test_runtime_and_architecture() -> None:
    assert GLOBALS["Runtime"] == "python3.13"
    assert GLOBALS["Architectures"] == ["arm64"]
    assert all("Runtime" not in props and "Architectures" not in props for props in FUNCTIONS.values())


def test_every_sqs_trigger_reports_batch_item_failures() -> None:
    assert len(sqs_events()) == 3
    for _, event in sqs_events():
        assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert 1 <= event["BatchSize"] <= 10


def test_source_queues_redrive_to_a_dead_letter_queue_and_outlast_the_function() -> None:
    source_queues = [name for name, props in QUEUES.items() if "RedrivePolicy" in props]
    assert sorted(source_queues) == ["InventoryQueue", "OrdersQueue", "PaymentsQueue"]
    for name in source_queues:
        redrive = QUEUES[name]["RedrivePolicy"]
        assert redrive["maxReceiveCount"] == 5
        target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert target in QUEUES
        assert "RedrivePolicy" not in QUEUES[target]
        assert QUEUES[name]["VisibilityTimeout"] >= 6 * GLOBALS["Timeout"]


CONTRACT_FILTERS = {
    "OrdersQueue": [
        "InventoryReserved",
        "InventoryRejected",
        "PaymentSucceeded",
        "PaymentFailed",
        "PaymentRefunded",
        "UserRegistered",
    ],
    "InventoryQueue": ["OrderPlaced", "OrderCancelled", "OrderRejected", "PaymentFailed"],
    "PaymentsQueue": ["OrderPlaced", "InventoryReserved", "OrderCancelled", "OrderRejected"],
}


def test_queue_subscriptions_filter_as_the_contract_says() -> None:
    subscriptions = [
        r["Properties"]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::SNS::Subscription" and r["Properties"]["Protocol"] == "sqs"  # not the alarm email
    ]
    by_queue = {sub["Endpoint"]["Fn::GetAtt"][0]: sub for sub in subscriptions}
    assert sorted(by_queue) == sorted(CONTRACT_FILTERS)
    for queue, event_types in CONTRACT_FILTERS.items():
        assert sorted(by_queue[queue]["FilterPolicy"]["event_type"]) == sorted(event_types)
        assert by_queue[queue]["FilterPolicyScope"] == "MessageAttributes"
        assert by_queue[queue]["RawMessageDelivery"] is True
        # contract: every subscription has a redrive policy (messages SNS cannot deliver at all)
        assert by_queue[queue]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] in QUEUES


def test_notifications_subscription_dead_letters_and_retries() -> None:
    notifications = FUNCTIONS["NotificationsFunction"]
    [event] = notifications["Events"].values()
    assert event["Type"] == "SNS"
    expected = ["OrderCancelled", "OrderConfirmed", "OrderRejected", "PaymentRefunded", "UserRegistered"]
    assert sorted(event["Properties"]["FilterPolicy"]["event_type"]) == expected
    assert event["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] in QUEUES
    assert notifications["DeadLetterQueue"]["TargetArn"]["Fn::GetAtt"][0] in QUEUES
    assert notifications["EventInvokeConfig"]["MaximumRetryAttempts"] == 2


def _actions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["Action"]] if isinstance(node.get("Action"), str) else list(node.get("Action", []))
        return found + [action for value in node.values() for action in _actions(value)]
    if isinstance(node, list):
        return [action for value in node for action in _actions(value)]
    return []


def test_no_wildcard_actions() -> None:
    actions = _actions({name: r for name, r in RESOURCES.items() if r["Type"] != "AWS::KMS::Key"})
    assert actions  # the inline statements are found
    assert not [action for action in actions if "*" in action]


def test_the_only_wildcards_of_a_key_policy_are_the_accounts_and_cloudwatchs() -> None:
    """A key policy's root statement hands the key to the account's IAM (AWS's default key policy; without it
    nobody could ever manage the key); CloudWatch may use the alarm topic's key for data keys, nothing else."""
    keys = {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::KMS::Key"}
    assert list(keys) == ["AlarmTopicKey"]
    wildcards = {
        (json.dumps(statement["Principal"], sort_keys=True), action)
        for statement in keys["AlarmTopicKey"]["KeyPolicy"]["Statement"]
        for action in _actions(statement)
        if "*" in action
    }
    root = json.dumps({"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}, sort_keys=True)
    cloudwatch = json.dumps({"Service": "cloudwatch.amazonaws.com"}, sort_keys=True)
    assert wildcards == {(root, "kms:*"), (cloudwatch, "kms:GenerateDataKey*")}


ALARMS = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::CloudWatch::Alarm"]


def test_every_dead_letter_queue_has_an_alarm() -> None:
    dead_letter_queues = {name for name in QUEUES if "DeadLetter" in name}
    alarmed = {
        alarm["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for alarm in ALARMS
        if alarm.get("MetricName") == "ApproximateNumberOfMessagesVisible"  # not the main queues' age alarms
    }
    subscription_targets = {
        r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::SNS::Subscription" and "RedrivePolicy" in r["Properties"]  # not the alarm email
    }
    redrive_targets = {
        props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for props in QUEUES.values()
        if "RedrivePolicy" in props
    }
    assert subscription_targets | redrive_targets <= dead_letter_queues
    assert len(dead_letter_queues) >= 6
    assert alarmed == dead_letter_queues


def test_an_email_ses_may_not_have_sent_raises_an_alarm() -> None:
    """The alarm watches the metric exactly as Powertools emits it: the namespace and the service
    dimension come from the function's environment."""
    notifications = FUNCTIONS["NotificationsFunction"]
    source = (ROOT / notifications["CodeUri"] / "notifications" / "app.py").read_text()
    assert 'name="EmailOutcomeUnknown"' in source
    [alarm] = [alarm for alarm in ALARMS if alarm.get("MetricName") == "EmailOutcomeUnknown"]
    assert alarm["Namespace"] == GLOBALS["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    service = notifications["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": service}]
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == ("Sum", 0, "GreaterThanThreshold")
    assert alarm["TreatMissingData"] == "notBreaching"


def test_connection_strings_are_secrets_not_parameters() -> None:
    assert not [name for name in TEMPLATE["Parameters"] if "mongo" in name.lower() or "uri" in name.lower()]
    for name, props in FUNCTIONS.items():
        variables = props["Environment"]["Variables"]
        assert "MONGODB_URI" not in variables, name
        secret = variables["MONGODB_SECRET_ID"]["Ref"]
        assert RESOURCES[secret]["Type"] == "AWS::SecretsManager::Secret"


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_handler_module_exists(function: str) -> None:
    props = FUNCTIONS[function]
    module, _, attribute = props["Handler"].rpartition(".")
    path = ROOT / props["CodeUri"] / (module.replace(".", "/") + ".py")
    assert path.is_file(), path
    assert f"{attribute} =" in path.read_text() or f"def {attribute}(" in path.read_text()


# ---------- identity: who may call what (contract, Identity) ----------

API = RESOURCES["ShopApi"]["Properties"]
PUBLIC_ROUTES = [("GET", "/inventory/{sku}")]


def api_events() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, event["Properties"])
        for name, props in FUNCTIONS.items()
        for event in props.get("Events", {}).values()
        if event["Type"] == "Api"
    ]


def test_the_user_pool_signs_in_by_email_with_a_strong_password_and_has_a_staff_group() -> None:
    [pool_id] = [name for name, r in RESOURCES.items() if r["Type"] == "AWS::Cognito::UserPool"]
    pool = RESOURCES[pool_id]["Properties"]
    assert pool["UsernameAttributes"] == ["email"]
    assert pool["AutoVerifiedAttributes"] == ["email"]
    password = pool["Policies"]["PasswordPolicy"]
    assert password["MinimumLength"] >= 12
    assert all(password[f"Require{kind}"] is True for kind in ("Lowercase", "Uppercase", "Numbers", "Symbols"))

    [client] = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::Cognito::UserPoolClient"]
    assert client["UserPoolId"] == {"Ref": pool_id}
    assert client["GenerateSecret"] is False  # scripts sign in without a secret
    assert sorted(client["ExplicitAuthFlows"]) == ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_PASSWORD_AUTH"]

    [group] = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::Cognito::UserPoolGroup"]
    assert group == group | {"GroupName": "staff", "UserPoolId": {"Ref": pool_id}}

    outputs = TEMPLATE["Outputs"]
    assert outputs["UserPoolId"]["Value"] == {"Ref": pool_id}
    client_id = next(name for name, r in RESOURCES.items() if r["Type"] == "AWS::Cognito::UserPoolClient")
    assert outputs["UserPoolClientId"]["Value"] == {"Ref": client_id}


def user_pool() -> dict[str, Any]:
    [pool] = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::Cognito::UserPool"]
    return dict(pool)


def app_client() -> dict[str, Any]:
    [client] = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::Cognito::UserPoolClient"]
    return dict(client)


def test_a_changed_email_takes_effect_only_once_its_owner_verified_it() -> None:
    """Without this, a customer's UpdateUserAttributes puts anyone's address in their next token."""
    pool = user_pool()
    assert pool["UserAttributeUpdateSettings"] == {"AttributesRequireVerificationBeforeUpdate": ["email"]}
    assert "email" in pool["AutoVerifiedAttributes"]  # CloudFormation requires it with the setting above


def test_the_app_client_writes_no_verification_and_its_id_tokens_say_whether_the_email_is_verified() -> None:
    client = app_client()
    written = client["WriteAttributes"]
    assert written  # unset or empty, every standard attribute is writable by the user
    assert sorted(written) == ["email", "name"]  # an email changed takes effect once verified (the pool's setting)
    assert {"email_verified", "phone_number_verified"}.isdisjoint(written)
    assert {"email", "email_verified"} <= set(client["ReadAttributes"])  # what POST /users reads


def test_the_default_authorizer_is_the_user_pool_and_only_the_catalog_is_public() -> None:
    auth = API["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["UserPoolArn"] == {"Fn::GetAtt": ["UserPool", "Arn"]}
    assert authorizer.get("Identity", {}).get("Header", "Authorization") == "Authorization"

    events = api_events()
    assert len(events) == 8
    assert all(event["RestApiId"] == {"Ref": "ShopApi"} for _, event in events)
    public = sorted((event["Method"].upper(), event["Path"]) for _, event in events if "Auth" in event)
    assert public == PUBLIC_ROUTES
    for _, event in events:
        if "Auth" in event:  # the public route opts out of the default authorizer, and of nothing else
            assert event["Auth"] == {"Authorizer": "NONE"}


def test_sam_creates_no_stray_stage() -> None:
    assert TEMPLATE["Globals"]["Api"]["OpenApiVersion"] == "3.0"


# Gateway response type -> (status, code); None: API Gateway's own status is kept.
GATEWAY_RESPONSES = {
    "UNAUTHORIZED": ("401", "unauthorized"),
    "ACCESS_DENIED": ("403", "forbidden"),
    "MISSING_AUTHENTICATION_TOKEN": ("404", "not_found"),  # what API Gateway answers for an unknown route
    "THROTTLED": ("429", "too_many_requests"),
    "BAD_REQUEST_BODY": ("422", "validation_error"),
    "REQUEST_TOO_LARGE": ("413", "payload_too_large"),
    "INTEGRATION_TIMEOUT": ("504", "gateway_timeout"),
    "DEFAULT_4XX": (None, "bad_request"),
    "DEFAULT_5XX": (None, "internal_error"),
}


@pytest.mark.parametrize("response_type", sorted(GATEWAY_RESPONSES))
def test_gateway_responses_answer_in_the_contracts_error_shape(response_type: str) -> None:
    status, code = GATEWAY_RESPONSES[response_type]
    response = API["GatewayResponses"][response_type]
    assert (str(response["StatusCode"]) if "StatusCode" in response else None) == status
    assert response["ResponseParameters"]["Headers"]["Content-Type"] == "'application/json'"
    [(content_type, template)] = response["ResponseTemplates"].items()
    assert content_type == "application/json"
    # What API Gateway renders: $context.error.messageString is a quoted JSON string.
    rendered = template.replace("$context.error.messageString", json.dumps('Say "hello"'))
    assert "$" not in rendered.replace("$context.error.messageString", "")
    body = json.loads(rendered)
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert set(body) == {"code", "message"}


def test_the_stage_is_throttled() -> None:
    parameters = TEMPLATE["Parameters"]
    [settings] = [s for s in API["MethodSettings"] if s["ResourcePath"] == "/*" and s["HttpMethod"] == "*"]
    rate = parameters[settings["ThrottlingRateLimit"]["Ref"]]["Default"]
    burst = parameters[settings["ThrottlingBurstLimit"]["Ref"]]["Default"]
    assert 0 < rate <= burst <= 5000  # under the account's default limits (10,000 rps, burst 5,000)


def test_api_functions_can_reserve_concurrency_that_a_new_account_need_not_have() -> None:
    parameter = TEMPLATE["Parameters"]["ApiReservedConcurrency"]
    assert parameter["Default"] == 0  # a new account (limit 10) cannot reserve any
    condition = TEMPLATE["Conditions"]["HasApiReservedConcurrency"]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiReservedConcurrency"}, "0"]}]}
    api_functions = {
        name for name, props in FUNCTIONS.items() if any(e["Type"] == "Api" for e in props["Events"].values())
    }
    assert len(api_functions) == 3
    for name in api_functions:
        assert FUNCTIONS[name]["ReservedConcurrentExecutions"] == {
            "Fn::If": ["HasApiReservedConcurrency", {"Ref": "ApiReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
        }


def test_access_log_in_json_names_caller_route_status_and_latency() -> None:
    setting = API["AccessLogSetting"]
    log_group = setting["DestinationArn"]["Fn::GetAtt"][0]
    assert RESOURCES[log_group]["Type"] == "AWS::Logs::LogGroup"
    assert "RetentionInDays" in RESOURCES[log_group]["Properties"]
    fields = set(json.loads(setting["Format"]).values())
    for variable in (
        "$context.requestId",
        "$context.identity.sourceIp",
        "$context.authorizer.claims.sub",
        "$context.httpMethod",
        "$context.resourcePath",
        "$context.status",
        "$context.responseLatency",
    ):
        assert variable in fields, variable
    # the account's CloudWatch role it needs is set once per account: tests/unit/test_account_template.py


# ---------- logs and encryption ----------


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_has_a_log_group_with_retention(function: str) -> None:
    group = RESOURCES[FUNCTIONS[function]["LoggingConfig"]["LogGroup"]["Ref"]]  # more in tests/unit/test_log_groups.py
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    assert TEMPLATE["Parameters"]["LogRetentionInDays"]["Default"] in (14, 30, 60, 90)


def test_every_queue_and_topic_is_encrypted_at_rest() -> None:
    assert len(QUEUES) >= 8
    for name, props in QUEUES.items():
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, name
        # SNS cannot deliver to a queue encrypted with the AWS managed SQS key (its policy cannot name SNS)
        assert props.get("KmsMasterKeyId") != "alias/aws/sqs", name
    topics = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::SNS::Topic"]
    assert topics
    assert all(topic.get("KmsMasterKeyId") for topic in topics)


# ---------- least privilege ----------


def _statements(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if "Effect" in node and "Action" in node else []
        return found + [s for value in node.values() for s in _statements(value)]
    if isinstance(node, list):
        return [s for value in node for s in _statements(value)]
    return []


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _policy_names(policies: Any) -> list[str]:
    return [next(iter(p)) if isinstance(p, dict) else p for p in _as_list(policies or [])]


def test_no_policy_grants_raw_email() -> None:
    assert "ses:SendRawEmail" not in _actions(RESOURCES)
    assert "ses:SendEmail" in _actions(FUNCTIONS["NotificationsFunction"]["Policies"])


def test_the_notifications_function_cannot_publish() -> None:
    policies = FUNCTIONS["NotificationsFunction"]["Policies"]
    assert not [name for name in _policy_names(policies) if name.startswith("SNS")]
    assert not [action for action in _actions(policies) if action.lower().startswith("sns:")]
    assert "Role" not in FUNCTIONS["NotificationsFunction"]


def test_every_publishing_function_may_publish_only_to_the_events_topic() -> None:
    """Which functions may publish at all is test_function_grants': those whose code does."""
    for name, props in FUNCTIONS.items():
        if "Role" in props:
            statements = _statements(RESOURCES[props["Role"]["Fn::GetAtt"][0]])
            publish = [s for s in statements if "sns:Publish" in _as_list(s["Action"])]
            assert [s["Resource"] for s in publish] in ([], [{"Ref": "ShopEventsTopic"}]), name
        else:
            policies = _as_list(props.get("Policies") or [])
            sns = [p for p in policies if isinstance(p, dict) and next(iter(p)).startswith("SNS")]
            assert sns in (
                [],
                [{"SNSPublishMessagePolicy": {"TopicName": {"Fn::GetAtt": ["ShopEventsTopic", "TopicName"]}}}],
            ), name


def test_sqs_consumers_may_receive_and_delete_only_their_own_queue() -> None:
    consumers = {name: event["Queue"]["Fn::GetAtt"][0] for name, event in sqs_events()}
    assert sorted(consumers) == ["InventoryEventsFunction", "OrdersEventsFunction", "PaymentsEventsFunction"]
    for function, queue in consumers.items():
        props = FUNCTIONS[function]
        # A role SAM generates for an SQS event gets AWSLambdaSQSQueueExecutionRole (every queue of the
        # account); with a role of its own, SAM adds nothing and ignores Policies.
        assert "Policies" not in props, function
        role = RESOURCES[props["Role"]["Fn::GetAtt"][0]]
        assert role["Type"] == "AWS::IAM::Role"
        assert "ManagedPolicyArns" not in role["Properties"]
        sqs_statements = [s for s in _statements(role) if any(a.startswith("sqs:") for a in _as_list(s["Action"]))]
        granted = {action for s in sqs_statements for action in _as_list(s["Action"])}
        assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= granted
        for statement in sqs_statements:
            assert statement["Effect"] == "Allow"
            assert _as_list(statement["Resource"]) == [{"Fn::GetAtt": [queue, "Arn"]}], function
    # and no other role of the template may consume a queue
    roles = [name for name, r in RESOURCES.items() if r["Type"] == "AWS::IAM::Role"]
    consumer_roles = {FUNCTIONS[f]["Role"]["Fn::GetAtt"][0] for f in consumers}
    for name in set(roles) - consumer_roles:
        assert "sqs:ReceiveMessage" not in _actions(RESOURCES[name]), name
