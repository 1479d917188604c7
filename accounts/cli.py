"""What management commands of any app need about accounts: read a password, create a user, find one by name.

Commands of other apps import this (apikeys' create_api_key does); accounts imports none of them.
"""

import getpass
import sys

from django.core.management.base import CommandError

from accounts import selectors, services
from accounts.models import User
from config.commands import service_errors_as_command_errors


def read_password(*, stdin: bool, prompt_twice: bool = True) -> str:
    """The password from standard input (one line) or typed twice at a prompt."""
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("No password on standard input.")
        return password
    if not sys.stdin.isatty():
        raise CommandError("No terminal to ask for a password: pass --password-stdin and pipe it in.")
    password = getpass.getpass("Password: ")
    if prompt_twice and password != getpass.getpass("Password (again): "):
        raise CommandError("The two passwords did not match.")
    return password


def create_user_or_fail(*, username: str, email: str, password: str, name: str = "", admin: bool = False) -> User:
    """accounts.services.user_create with its errors turned into one-line CLI errors."""
    with service_errors_as_command_errors():
        return services.user_create(username=username, email=email, password=password, name=name, is_staff=admin)


def add_user_argument(parser, *, help: str) -> None:
    """`--username`, naming the existing user a command acts for; `user_or_fail()` finds them."""
    parser.add_argument("--username", required=True, help=f"{help} (case-insensitive).")


def user_or_fail(username: str) -> User:
    """The user of that name (any case), or a CommandError saying there is none."""
    user = selectors.user_by_username(username=username)
    if user is None:
        raise CommandError(f"No user named {username!r}.")
    return user
