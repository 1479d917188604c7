"""manage.py send_test_email ADDRESS: check the mail settings (EMAIL_URL) by sending one mail now."""

from django.core.management.base import BaseCommand, CommandError

from accounts import services


class Command(BaseCommand):
    help = (
        "Send a test mail to ADDRESS now, in this process (not through the worker), with the configured backend "
        "(EMAIL_URL, DEFAULT_FROM_EMAIL), and say which backend sent it. Fails with a one-line reason when the "
        "mail server refuses or cannot be reached."
    )

    def add_arguments(self, parser):
        parser.add_argument("address", help="Where to send the test mail.")

    def handle(self, *args, address, **options):
        try:
            backend = services.mail_send_test(to=address)
        except OSError as error:  # SMTPException, refused connections, timeouts, DNS failures
            raise CommandError(f"Could not send the test mail to {address}: {type(error).__name__}: {error}") from None
        self.stdout.write(self.style.SUCCESS(f"Sent a test mail to {address} with {backend}."))
