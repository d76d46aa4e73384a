"""ESP webhooks: Amazon SES (through SNS), SendGrid, Mailgun and Postmark report the deliveries,
bounces, complaints, opens, clicks and unsubscribes of the mail they relay for mailpulse;
`POST /webhooks/{provider}` turns each into the lifecycle event mailpulse's own paths make.

One module per provider reads and authenticates its requests into `EspEvent`s (model); events
makes the lifecycle events; router answers the requests; settings is `[webhooks.*]`, which
mailpulse.project loads (so this package imports nothing here: couriers load projects too).
"""
