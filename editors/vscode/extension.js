// Starts `medpol lsp` for .policy files and connects VS Code to it over stdio.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("medpol");
  const serverOptions = {
    command: config.get("server.command", "medpol"),
    args: config.get("server.args", ["lsp"]),
  };
  const clientOptions = {
    documentSelector: [
      { scheme: "file", language: "medpol" },
      { scheme: "untitled", language: "medpol" },
    ],
  };
  client = new LanguageClient("medpol", "medpol policies", serverOptions, clientOptions);
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
