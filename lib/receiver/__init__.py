"""HTTP: the request path of a delivery (authenticate, read, validate, record, dispatch, acknowledge),
`WebhookReceiver` which serves it beside a page it is given, and the limits on what strangers'
connections and requests to the page may cost.
"""
