"""Creates in the local AWS (moto) every resource of template.yaml that the functions use."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import boto3

from devstack.stripe_server import API_KEY as LOCAL_STRIPE_KEY
from devstack.template import ACCOUNT_ID, REGION, Attributes, FunctionSpec, Resolver, Template

FAST_VISIBILITY_TIMEOUT = 2


@dataclass
class Provisioned:
    resolver: Resolver
    topic_arns: dict[str, str] = field(default_factory=dict)
    queues: dict[str, dict[str, str]] = field(default_factory=dict)  # logical id -> url, arn, name
    dead_letter_queues: dict[str, str] = field(default_factory=dict)  # source logical id -> DLQ logical id
    sns_delivery_queues: dict[str, dict[str, str]] = field(default_factory=dict)  # function -> url, arn
    secrets: dict[str, str] = field(default_factory=dict)
    sender_identities: list[str] = field(default_factory=list)
    user_pools: dict[str, dict[str, str]] = field(default_factory=dict)  # logical id -> id, arn
    user_pool_clients: dict[str, dict[str, str]] = field(default_factory=dict)  # logical id -> id, user_pool_id


def aws_client(service: str, endpoint_url: str | None) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def provision(template: Template, endpoint_url: str | None, mongodb_uri: str, prefix: str, fast: bool) -> Provisioned:
    """``endpoint_url`` None: the default AWS endpoints (moto's ``mock_aws`` in tests)."""
    sns, sqs = aws_client("sns", endpoint_url), aws_client("sqs", endpoint_url)
    secrets, ses = aws_client("secretsmanager", endpoint_url), aws_client("ses", endpoint_url)
    resolver = Resolver(template.default_parameters(), template.document.get("Conditions", {}))
    done = Provisioned(resolver)

    for name, props in template.of_type("AWS::SNS::Topic").items():
        topic_name = resolver.resolve(props.get("TopicName", f"{prefix}-{name}"))
        arn = sns.create_topic(Name=topic_name)["TopicArn"]
        resolver.resources[name] = Attributes(arn, {"TopicArn": arn, "TopicName": topic_name})
        done.topic_arns[name] = arn

    queue_props = template.of_type("AWS::SQS::Queue")
    for name, props in queue_props.items():  # first every queue, then the redrive policies between them
        queue_name = f"{prefix}-{name}"
        visibility = FAST_VISIBILITY_TIMEOUT if fast else int(props.get("VisibilityTimeout", 30))
        url = sqs.create_queue(QueueName=queue_name, Attributes={"VisibilityTimeout": str(visibility)})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        resolver.resources[name] = Attributes(url, {"Arn": arn, "QueueName": queue_name, "QueueUrl": url})
        done.queues[name] = {"url": url, "arn": arn, "name": queue_name}
    for name, props in queue_props.items():
        if "RedrivePolicy" in props:
            redrive = resolver.resolve(props["RedrivePolicy"])
            sqs.set_queue_attributes(
                QueueUrl=done.queues[name]["url"], Attributes={"RedrivePolicy": json.dumps(redrive)}
            )
            target = next(q for q, info in done.queues.items() if info["arn"] == redrive["deadLetterTargetArn"])
            done.dead_letter_queues[name] = target

    for name, props in template.of_type("AWS::SecretsManager::Secret").items():
        secret_name = resolver.resolve(props.get("Name", f"{prefix}/{name}"))
        # what the template's placeholder stands for: a Stripe key (localstripe's) or a connection string
        value = LOCAL_STRIPE_KEY if str(props.get("SecretString", "")).startswith("sk_") else mongodb_uri
        arn = secrets.create_secret(Name=secret_name, SecretString=value)["ARN"]
        resolver.resources[name] = Attributes(arn)
        done.secrets[name] = arn

    # Log groups are only names here (the functions' logs go to .local/logs): what a role or a
    # function's LoggingConfig refers to resolves as in AWS.
    for name, props in template.of_type("AWS::Logs::LogGroup").items():
        group = resolver.resolve(props["LogGroupName"])
        resolver.resources[name] = Attributes(group, {"Arn": f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{group}:*"})

    _provision_user_pools(template, aws_client("cognito-idp", endpoint_url), resolver, done)

    for props in template.of_type("AWS::SNS::Subscription", created_by=resolver).values():
        _subscribe(sns, resolver.resolve(props))

    for function in template.functions():
        for trigger in function.triggers:
            if trigger.kind == "SNS":
                done.sns_delivery_queues[function.name] = _sns_delivery_queue(
                    sqs, sns, function, trigger.properties, resolver, prefix
                )
        sender = resolver.resolve(function.environment.get("SENDER_EMAIL"))
        if sender and sender not in done.sender_identities:
            ses.verify_email_identity(EmailAddress=sender)
            done.sender_identities.append(sender)
    return done


# The user pool and app client settings that shape sign-up, sign-in and tokens, named as CreateUserPool and
# CreateUserPoolClient name them (moto puts in ID tokens only the standard attributes of ReadAttributes).
USER_POOL_SETTINGS = (
    "UsernameAttributes",
    "UsernameConfiguration",
    "AutoVerifiedAttributes",
    "UserAttributeUpdateSettings",
    "Policies",
)
USER_POOL_CLIENT_SETTINGS = ("ExplicitAuthFlows", "ReadAttributes", "WriteAttributes")


def _provision_user_pools(template: Template, cognito: Any, resolver: Resolver, done: Provisioned) -> None:
    """Each user pool with its app clients and groups, so that callers sign up and in as in AWS."""
    for name, props in template.of_type("AWS::Cognito::UserPool").items():
        settings = resolver.resolve({key: value for key, value in props.items() if key in USER_POOL_SETTINGS})
        pool = cognito.create_user_pool(PoolName=resolver.resolve(props.get("UserPoolName", name)), **settings)
        pool_id, arn = pool["UserPool"]["Id"], pool["UserPool"]["Arn"]
        resolver.resources[name] = Attributes(
            pool_id, {"Arn": arn, "ProviderName": f"cognito-idp.{REGION}.amazonaws.com/{pool_id}"}
        )
        done.user_pools[name] = {"id": pool_id, "arn": arn}
    for name, props in template.of_type("AWS::Cognito::UserPoolClient").items():
        resolved = resolver.resolve(props)
        client = cognito.create_user_pool_client(
            UserPoolId=resolved["UserPoolId"],
            ClientName=resolved.get("ClientName", name),
            GenerateSecret=bool(resolved.get("GenerateSecret", False)),
            **{key: value for key, value in resolved.items() if key in USER_POOL_CLIENT_SETTINGS},
        )["UserPoolClient"]
        resolver.resources[name] = Attributes(client["ClientId"])
        done.user_pool_clients[name] = {"id": client["ClientId"], "user_pool_id": resolved["UserPoolId"]}
    for props in template.of_type("AWS::Cognito::UserPoolGroup").values():
        resolved = resolver.resolve(props)
        cognito.create_group(UserPoolId=resolved["UserPoolId"], GroupName=resolved["GroupName"])


def _subscribe(sns: Any, props: dict[str, Any]) -> None:
    attributes = {}
    if "RawMessageDelivery" in props:
        attributes["RawMessageDelivery"] = str(props["RawMessageDelivery"]).lower()
    if "FilterPolicy" in props:
        attributes["FilterPolicy"] = json.dumps(props["FilterPolicy"])
        attributes["FilterPolicyScope"] = props.get("FilterPolicyScope", "MessageAttributes")
    sns.subscribe(
        TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"], Attributes=attributes
    )


def _sns_delivery_queue(
    sqs: Any, sns: Any, function: FunctionSpec, trigger: dict[str, Any], resolver: Resolver, prefix: str
) -> dict[str, str]:
    """moto cannot invoke Lambda: SNS delivers the function's messages (with their SNS envelope,
    filtered by the trigger's filter policy) to a queue the local stack drains into invocations."""
    url = sqs.create_queue(QueueName=f"{prefix}-{function.name}-sns-deliveries")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    props = {
        "TopicArn": resolver.resolve(trigger["Topic"]),
        "Protocol": "sqs",
        "Endpoint": arn,
        "RawMessageDelivery": False,
    }
    if "FilterPolicy" in trigger:
        props |= {
            "FilterPolicy": trigger["FilterPolicy"],
            "FilterPolicyScope": trigger.get("FilterPolicyScope", "MessageAttributes"),
        }
    _subscribe(sns, props)
    return {"url": url, "arn": arn}
