from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    first_name = factory.Faker("first_name")
    default_from_name = factory.LazyAttribute(lambda u: u.first_name)
    default_from_email = factory.LazyAttribute(lambda u: u.email)
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create: bool, extracted: object, **kwargs: object) -> None:  # noqa: N805
        if create:
            obj.save()


class MailingListFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "lists.MailingList"

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Newsletter {n}")
    from_name = "Newsletter"
    from_email = factory.LazyAttribute(lambda o: f"news@{o.owner.username}.example.com")


class SubscriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "lists.Subscriber"

    account = factory.SubFactory(UserFactory)
    email = factory.Sequence(lambda n: f"reader{n}@example.org")
    domain = factory.LazyAttribute(lambda o: o.email.rpartition("@")[2].lower())
    name = factory.Faker("name")


class SubscriptionFactory(factory.django.DjangoModelFactory):
    """Creates the row directly; tests of counts go through lists.subscriptions."""

    class Meta:
        model = "lists.Subscription"

    mailing_list = factory.SubFactory(MailingListFactory)
    subscriber = factory.SubFactory(
        SubscriberFactory, account=factory.SelfAttribute("..mailing_list.owner")
    )
    status = "confirmed"
    source = "panel"


class CustomFieldFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "lists.CustomField"

    account = factory.SubFactory(UserFactory)
    key = factory.Sequence(lambda n: f"field{n}")
    label = factory.LazyAttribute(lambda o: o.key.title())
    type = "text"


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "lists.Segment"

    account = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Segment {n}")
    definition = factory.LazyFunction(lambda: {"match": "all", "conditions": []})


class BlocklistEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "lists.BlocklistEntry"

    account = factory.SubFactory(UserFactory)
    kind = "address"
    value = factory.Sequence(lambda n: f"blocked{n}@example.org")


class SignupFormFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "lists.SignupForm"
        skip_postgeneration_save = True

    account = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Form {n}")

    @factory.post_generation
    def lists(obj, create: bool, extracted: object, **kwargs: object) -> None:  # noqa: N805
        if create and extracted:
            obj.lists.set(extracted)


class EmailTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "campaigns.EmailTemplate"

    account = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Layout {n}")
    html = (
        "<html><head><style>p { color: #123456; }</style></head><body>"
        '<div style="display:none">{{ preheader }}</div>{{ content }}'
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
    )


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "campaigns.Campaign"
        skip_postgeneration_save = True

    account = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Campaign {n}")
    subject = 'Hello {{ subscriber.name|default:"friend" }}'
    from_name = "News"
    from_email = factory.LazyAttribute(lambda o: o.account.email)
    template = factory.SubFactory(EmailTemplateFactory, account=factory.SelfAttribute("..account"))
    body = '<p>Hi {{ subscriber.name }}, read <a href="https://example.com/a">this</a>.</p>'
    body_format = "html"

    @factory.post_generation
    def lists(obj, create: bool, extracted: object, **kwargs: object) -> None:  # noqa: N805
        if create and extracted:
            obj.lists.set(extracted)
