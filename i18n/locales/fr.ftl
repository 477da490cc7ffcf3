# Les phrases que lit l'équipe, en français (voir en.ftl). Lignes de moins de
# 80 colonnes : la console du PC coupe les mots.

## Menus de démarrage (ISOLINUX, GRUB, LILO) : affichés sans accents.
menu-install = Installer (efface ce PC)
menu-inventory = Inventaire seul (signale le matériel, ne change rien)
menu-rescue = Console de secours
menu-local = Démarrer sur le disque local
menu-autoboot = Démarrage automatique dans # seconde{"{"},s{"}"}...
menu-tabmsg = Touche [Tab] : modifier les options

## Les premières lignes à l'écran.
banner-install = Cet ordinateur est en cours d'installation. Vous pouvez le laisser :
banner-install-2 = il redémarre tout seul quand c'est fini.
banner-inventory = Les caractéristiques de cet ordinateur sont envoyées au serveur ;
banner-inventory-2 = il s'éteint tout seul ensuite.

## Les étapes, chacune suivie de son résultat.
step-hardware = Recherche du matériel
step-network = Connexion au réseau
step-looking = Examen de cet ordinateur
step-server = Contact du serveur d'installation { $server }
step-done = fait
step-drivers = fait ({ $count ->
    [one] { $count } pilote
   *[other] { $count } pilotes
})
step-not-yet = pas encore
retry-in = Nouvel essai dans { $secs ->
    [one] { $secs } seconde
   *[other] { $secs } secondes
}...
not-approved = Le serveur d'installation n'a pas encore accepté cet ordinateur : demandez au bénévole d'accepter les nouveaux PC sur le tableau de bord. Nouvelle demande dans 60 secondes.
fail-not-recognised = Le serveur d'installation connaît déjà un ordinateur avec cette identité : demandez au bénévole de laisser ce PC s'inscrire à nouveau sur le tableau de bord.
fail-replayed = La réponse du serveur d'installation ne correspond pas à la question de cet ordinateur (une ancienne réponse rejouée ?) : rien ne sera écrit sur les disques.
no-nic-driver = Ce CD n'a pas de pilote pour la carte réseau d'identifiant PCI { $id }.
details-sent = Le serveur a reçu les caractéristiques de cet ordinateur. Extinction.
disks-used = Les disques seront utilisés ainsi :
countdown = Début dans { $secs } s (éteignez l'ordinateur maintenant pour arrêter)...
starting = C'est parti.
technical-detail = Détail technique

## Ce que l'installation affiche pendant qu'elle écrit le disque.
event-partition = Écriture des tables de partitions
event-format = Création des systèmes de fichiers
event-download = Téléchargement et décompression du système
event-configure = Réglage du système installé
event-installed = Installé ; redémarrage sur le nouveau système

## Quand le programme s'arrête.
agent-finished = Le programme d'installation est terminé.
choices = Tapez une lettre puis Entrée :  r = réessayer   s = console   b = redémarrer   p = éteindre
no-shell = Ce CD n'a pas de console (/bin/sh manque).
shell-start = Ouverture d'une console ; tapez `exit` pour revenir.

## Les échecs : une phrase que l'équipe peut lire au téléphone.
fail-agent-start = Le programme d'installation n'a pas pu démarrer.
fail-agent-stopped = Le programme d'installation s'est arrêté de façon inattendue.
fail-restart = Impossible de redémarrer.
fail-power-off = Impossible d'éteindre.
fail-power-off-switch = Impossible d'éteindre ; vous pouvez éteindre l'ordinateur.
fail-shell = La console n'a pas démarré.
fail-settings = Les réglages de ce CD sont faux ; il faut refaire le CD.
fail-network = Cet ordinateur n'a pas pu se connecter au réseau. Vérifiez que le câble réseau est branché.
fail-server = Cet ordinateur n'a pas pu joindre le serveur d'installation.
fail-kernel = Ce CD ne correspond pas à son propre noyau ; il faut refaire le CD.
fail-key = La clé du serveur sur ce CD est abîmée ; il faut refaire le CD.
fail-refused = La réponse du serveur d'installation n'est pas signée par le serveur de ce CD : rien ne sera écrit sur les disques.
fail-not-pinned = Le serveur qui a répondu n'est pas le serveur d'installation de ce CD (quelque chose sur le réseau s'interpose peut-être) : rien ne sera écrit sur les disques.
fail-not-understood = Le serveur d'installation a envoyé une réponse que ce CD ne comprend pas.
fail-other-computer = Le serveur d'installation a envoyé un plan pour un autre ordinateur : rien ne sera écrit.
fail-disks = Les disques de cet ordinateur ne peuvent pas contenir le système choisi par le serveur : rien n'a été écrit.
fail-install = L'installation n'est pas allée jusqu'au bout. Cet ordinateur ne démarrera pas le système à moitié installé ; appelez de l'aide avec le détail ci-dessous.
fail-no-restart = Installé, mais l'ordinateur n'a pas redémarré tout seul : retirez le CD et redémarrez-le.
offline-no-server = Le serveur d'installation est injoignable : cet ordinateur s'installe depuis le CD ou la clé USB.

## Un PC déjà installé, redémarré sur un CD ou une clé oubliés.
installed-already = Cet ordinateur est déjà installé : rien ne sera écrit sur ses disques.
installed-cd = Le CD sort et l'ordinateur redémarre sur son système installé.
installed-usb = Retirez la clé USB : l'ordinateur redémarre alors sur son système installé.
installed-usb-off = La clé USB est toujours là : l'ordinateur s'éteint. Retirez la clé, puis rallumez-le.

## Le plan des disques, montré avant toute écriture.
plan-disk = Disque { $name } ({ $size })
plan-untouched = gardé tel quel
plan-erased = sera EFFACÉ
plan-partly = en partie réécrit, vos fichiers sont gardés
plan-kept = gardé
plan-note = Remarque : { $note }
why-boot-device = c'est le CD ou la clé d'installation
why-removable = support amovible
why-excluded = exclu par le serveur
why-too-small = trop petit pour servir
why-holds-home = dossier personnel avec vos fichiers
warn-insecure-cd = Ce CD a été fait avec lazare.insecure : il ne vérifie pas que le serveur d'installation est le bon. Réservé aux essais.
fail-tls-setup = Ce CD n'arrive pas à établir sa connexion sécurisée.
