from django.db import migrations, models
from django.db.models.functions import Lower


class Migration(migrations.Migration):
    """Email verification: email_verified, pending_email, and the claim that makes an address unique.

    Existing accounts keep their addresses claimed (unique, as before); none is verified yet."""

    dependencies = [
        ("accounts", "0002_security_events_and_reauth"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="email_verified",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="user",
            name="email_claimed",
            field=models.BooleanField(default=True),
        ),
        migrations.AddField(
            model_name="user",
            name="pending_email",
            field=models.EmailField(blank=True, max_length=254),
        ),
        migrations.RemoveConstraint(
            model_name="user",
            name="accounts_user_email_ci_unique",
        ),
        migrations.AddConstraint(
            model_name="user",
            constraint=models.UniqueConstraint(
                Lower("email"),
                condition=models.Q(("email_claimed", True), models.Q(("email", ""), _negated=True)),
                name="accounts_user_claimed_email_ci_unique",
            ),
        ),
    ]
