"""Open standards out: FIWARE Smart Data Models (``WasteContainer``, ``WasteContainerModel``,
``IndoorEnvironmentObserved``) in key-values and NGSI-LD normalized form, and the push to an
NGSI-LD context broker.

Sits above alerts and forecast (a bin's ``status`` is its open alerts, its
``nextActuationDeadline`` its fill forecast) and below the API, which serves the same entities.
"""
