"""The OpenAPI document (/api/v1/schema) and a self-contained page rendering it (/api/v1/docs).

The page needs no CDN: it is plain HTML and a little JavaScript that fetches the schema and
lists every operation with its parameters, request body, responses and scopes.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "spaces.auth.ApiKeyAuthentication"
    name = ["bearerAuth", "apiKeyHeader"]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "`Authorization: Bearer emit_<secret>`",
            },
            {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
        ]


class SchemaView(SpectacularAPIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Jobyard API</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#f7f8fa}
main{max-width:980px;margin:0 auto;padding:24px}
h1{margin:0 0 4px} .sub{color:#5b6475;margin:0 0 24px}
section.op{background:#fff;border:1px solid #dde1e8;border-radius:8px;margin:12px 0;padding:0}
section.op>summary,section.op>header{cursor:pointer;padding:10px 14px;display:flex;gap:12px;align-items:baseline}
.m{font:600 12px monospace;padding:2px 8px;border-radius:4px;color:#fff;min-width:44px;text-align:center}
.GET{background:#2f7ed8}.POST{background:#2e9d5b}.PUT{background:#b27c12}.DELETE{background:#c0392b}.PATCH{background:#8e44ad}
code,pre{font-family:ui-monospace,monospace;font-size:13px}
pre{background:#f1f3f6;padding:10px;border-radius:6px;overflow:auto;margin:6px 0}
.body{padding:0 14px 12px} table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #eceef2;padding:4px 6px;text-align:left;vertical-align:top}
.tag{font-weight:600;margin-top:28px;font-size:18px}
</style></head>
<body><main>
<h1>Jobyard API</h1>
<p class="sub">Generated from <a href="schema?format=json">the OpenAPI document</a>.
Authenticate with <code>Authorization: Bearer emit_&lt;secret&gt;</code> or <code>X-Api-Key</code>.
Errors are <code>{"error", "code", "details"?}</code>.</p>
<div id="ops">Loading...</div>
</main>
<script>
function esc(s){return String(s).replace(/[&<>"]/g,c=>({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]))}
function resolve(doc,s,depth){
  if(!s||depth>6)return s;
  if(s.$ref){const name=s.$ref.split("/").pop();return resolve(doc,doc.components.schemas[name],depth+1)}
  if(s.type==="array")return{type:"array",items:resolve(doc,s.items,depth+1)};
  if(s.properties){const out={type:"object",properties:{}};
    for(const[k,v]of Object.entries(s.properties))out.properties[k]=resolve(doc,v,depth+1);
    if(s.required)out.required=s.required;return out}
  return s}
function render(doc){
  const byTag={};
  for(const[path,item]of Object.entries(doc.paths||{}))for(const[method,op]of Object.entries(item)){
    const tag=(op.tags||["other"])[0];(byTag[tag]=byTag[tag]||[]).push([path,method.toUpperCase(),op])}
  let html="";
  for(const[tag,ops]of Object.entries(byTag)){
    html+=`<div class="tag">${esc(tag)}</div>`;
    for(const[path,method,op]of ops){
      html+=`<details class="op"><summary><span class="m ${method}">${method}</span><code>${esc(path)}</code><span>${esc(op.summary||"")}</span></summary><div class="body">`;
      if(op.description)html+=`<p>${esc(op.description)}</p>`;
      const params=(op.parameters||[]);
      if(params.length){html+="<h4>Parameters</h4><table>";
        for(const p of params)html+=`<tr><td><code>${esc(p.name)}</code></td><td>${esc(p.in)}</td><td>${p.required?"required":""}</td><td>${esc(p.description||"")}</td></tr>`;
        html+="</table>"}
      if(op.requestBody){html+="<h4>Request body</h4>";
        for(const[ct,c]of Object.entries(op.requestBody.content||{}))
          html+=`<div><code>${esc(ct)}</code></div><pre>${esc(JSON.stringify(resolve(doc,c.schema,0),null,2))}</pre>`}
      html+="<h4>Responses</h4><table>";
      for(const[code,r]of Object.entries(op.responses||{})){
        const c=r.content&&Object.values(r.content)[0];
        html+=`<tr><td><b>${esc(code)}</b></td><td>${esc(r.description||"")}${c?`<pre>${esc(JSON.stringify(resolve(doc,c.schema,0),null,2))}</pre>`:""}</td></tr>`}
      html+="</table></div></details>"}}
  document.getElementById("ops").innerHTML=html}
fetch("schema?format=json").then(r=>r.json()).then(render).catch(e=>{
  document.getElementById("ops").textContent="Could not load the schema: "+e})
</script></body></html>
"""


@require_GET
def api_docs(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE, content_type="text/html; charset=utf-8")
