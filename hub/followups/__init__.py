"""Follow-up timers: messages the hub schedules itself from an event (pickup reminders,
points-expiry reminders, delivery feedback requests).

`rules` reads the rules file, `schedule` creates and cancels timers inside the intake
transaction, `firing` turns due timers into ordinary events + outbox jobs exactly once, and
`view` shows them in `GET /v1/events/{id}`.
"""
