"""RQ cron configuration: registers every entry of certconsole.schedule.SCHEDULE."""

from django.utils.module_loading import import_string
from rq import cron

from certconsole.schedule import SCHEDULE

for entry in SCHEDULE:
    cron.register(
        import_string(entry.func), queue_name=entry.queue, cron=entry.cron, name=entry.name
    )
