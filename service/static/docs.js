// Starts Swagger UI (GET /docs) on the service's /openapi.json. A file, not an inline script: the
// page's Content-Security-Policy runs scripts from this origin only.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    displayOperationId: true,
    validatorUrl: null, // the default badge sends the document to an outside validator
  });
})();
